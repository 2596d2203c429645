"""Outputs: output plans and names, records (JSON), the writer of each ``--save`` kind, formats."""
