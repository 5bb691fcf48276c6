"""sadyn.training"""
