"""Data: pull, class definitions, the split ledger, audit, tensor cache and input pipeline."""
