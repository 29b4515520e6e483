"""Collection: suite files to pytest items."""
