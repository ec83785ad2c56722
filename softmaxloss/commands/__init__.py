"""Subcommands of ``python -m softmaxloss`` (one module each, ``add_parser(subparsers)``)."""
