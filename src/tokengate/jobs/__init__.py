"""Background work every instance runs: batched writes, webhook delivery, token notices."""
