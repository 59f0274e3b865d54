"""The 6x6x6 L2 event builder: L1 fragment streams merged into ProtoDUNE-DP event files."""
