"""One panel per tab."""
