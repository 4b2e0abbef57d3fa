"""SILOT (Crawford & Pineau, AAAI 2020): tracking by discovery and propagation of objects; see docs/silot.md."""
