"""Seeded synthetic sample data (a Xiangzhou, Zhuhai district) for demos, tests and benchmarks."""
