"""Tracking and coverage, pure code (no model, no video): ``matching`` pairs boxes between frames,
``coverage`` says which boxes cover frame i, ``tracks`` follows small faces between fine passes."""
from .coverage import TRACK_SPEED, Coverage, cover_boxes  # noqa: F401
from .matching import match  # noqa: F401
from .tracks import SmallFaceTracks, track_back, track_step  # noqa: F401
