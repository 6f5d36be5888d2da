"""What a user hands chansim, checked once at the door: probability vectors, logits and
synthetic pairs (``distributions``), strict file loading (``io``), memory and time guards
(``guards``), logged-path inputs and the call recursion (``paths``), draft trees (``trees``),
whole numbers such as budgets and trial counts (``numbers``).
"""
