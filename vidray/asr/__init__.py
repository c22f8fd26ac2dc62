"""Speech backends: each turns 16 kHz audio clips into timed words (see base.Recognizer)."""
