"""sadyn.dynamics"""
