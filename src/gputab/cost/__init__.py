"""What a GPU second costs and who pays: prices, shares, the ledger, waste, diagnosis, forecast (pure, no I/O)."""
