"""Who may connect and what they may do: users, password hashes, signed tokens, roles, the per-call credential check."""
