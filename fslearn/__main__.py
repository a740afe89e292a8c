import sys

from fslearn.cli import main

sys.exit(main())
