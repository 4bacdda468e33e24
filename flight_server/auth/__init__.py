"""Who may connect and what they may do: users, password hashes, signed tokens, roles, the Flight auth middleware."""
