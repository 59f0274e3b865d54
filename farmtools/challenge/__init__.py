"""Mock data challenges: drive the whole chain with the emulator, report on every file, and model the farm.

May import every other stage: it sits on top of them all.
"""
