"""sadyn.probes"""
