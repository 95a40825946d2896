"""Web sessions of members (portal) and staff (console, till), kept on the server so signing out is final."""
