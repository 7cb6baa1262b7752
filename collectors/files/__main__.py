"""`python -m collectors.files`: run the file collector with settings from the environment."""

from collectors.files.service import main

main()
