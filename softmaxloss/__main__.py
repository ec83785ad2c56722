import sys

from softmaxloss.cli import main

sys.exit(main())
