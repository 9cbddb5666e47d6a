"""Deciding who is who from embeddings alone (numpy, no store, no pixels): set distances, thresholds, join
decisions, face quality, clustering maths, and the positional truth used to score them."""
