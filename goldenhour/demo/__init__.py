"""`goldenhour demo`: the golden hour of one missing child, played on the dev system."""
