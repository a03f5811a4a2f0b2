"""GPU check: full-size random-weight SD1.5 and SDXL through the real ModelHost."""
