"""sadyn.models"""
