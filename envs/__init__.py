"""mlsysgym.envs"""
