"""dev/: the machine-independent device code the UVM needs (``rnd.c``'s arc4random)."""
