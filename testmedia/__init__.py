"""Test media with ground truth (not part of the engine, never shipped in a layer): ``make_clip`` writes a
clip with real faces moving over a textured background and returns where every face is on every frame;
``scene_clip`` writes a scene that tempts a face detector (textures, close hands and objects, a fisheye
warp) with faces of many sizes; ``make_bad_inputs`` writes broken inputs. Used by the tests, ``make demo`` and the benchmarks; importable from
the repository root. CLI: ``python -m testmedia OUT.mp4 --width 960 --height 540 --seconds 6 --faces 2``."""
from .scene import scene_clip  # noqa: F401
from .synth import decimate, edge_clip, face_image, main, make_bad_inputs, make_clip  # noqa: F401
