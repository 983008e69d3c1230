import sys

from bench.integrity.run import main

sys.exit(main())
