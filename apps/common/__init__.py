"""What every application shares: flags, strategy, data cache, training glue, export, metrics."""
