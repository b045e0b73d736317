"""mlsysgym.agents"""
