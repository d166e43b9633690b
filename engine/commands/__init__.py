"""The subcommands of the ``tilerun`` command line, one module each."""
