"""mlsysgym.simulators"""
