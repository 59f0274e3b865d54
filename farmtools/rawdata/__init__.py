"""The 3x1x1 raw data files: names, byte layout, 12-bit packing, Huffman compression, reader and writer.

Lowest layer after :mod:`farmtools.detector`: imports nothing else from farmtools.
"""
