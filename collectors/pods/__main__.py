"""`python -m collectors.pods`: run the pod collector with settings from the environment."""

from collectors.pods.service import main

main()
