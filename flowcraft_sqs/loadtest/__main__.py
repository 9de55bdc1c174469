"""`python -m flowcraft_sqs.loadtest ...`: the same as `flowcraft-sqs loadtest ...`."""

from .cli import main

if __name__ == "__main__":
    main()
