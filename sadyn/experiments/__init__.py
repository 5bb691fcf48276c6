"""sadyn.experiments"""
