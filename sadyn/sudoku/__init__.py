"""sadyn.sudoku"""
