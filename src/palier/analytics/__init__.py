"""Analytics: the KPIs of a program (members, points flows, liability, members vs non-members)."""
