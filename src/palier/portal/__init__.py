"""Members' own access to the portal: signed sign-in links and one-time codes by e-mail."""
