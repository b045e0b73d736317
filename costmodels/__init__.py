"""mlsysgym.costmodels"""
