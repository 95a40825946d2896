"""Staff users of a program (admin, marketer, store staff): sign-in, passwords, and what each role may do."""
