"""The command line's subcommands, one module each (``add_parser(subparsers)``)."""
