"""One module per `energyprof` subcommand; each defines register(subparsers)."""
