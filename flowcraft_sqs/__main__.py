"""`python -m flowcraft_sqs` runs the `flowcraft-sqs` command group."""

from .cli import main

if __name__ == "__main__":
    main(prog_name="flowcraft-sqs")
