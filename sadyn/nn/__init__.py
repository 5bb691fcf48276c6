"""sadyn.nn"""
