"""The demo: Maison Fournil, a café and bakery chain with a web shop, and a year of its history."""

from palier.demo.build import DEMO_NAME, DemoInfo, build_demo, demo_access, find_demo, unfinished_demo

__all__ = ["DEMO_NAME", "DemoInfo", "build_demo", "demo_access", "find_demo", "unfinished_demo"]
