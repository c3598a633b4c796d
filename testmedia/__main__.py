import sys

from .synth import main

sys.exit(main())
