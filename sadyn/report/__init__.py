"""sadyn.report"""
