"""mlsysgym.experiments"""
