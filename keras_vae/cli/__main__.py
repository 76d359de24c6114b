"""``python -m keras_vae.cli ...``: the `keras-vae` command."""

import sys

from keras_vae.cli import main

sys.exit(main())
