/// Training engine: columnar tables, joins, linear models, gradient-boosted trees, metrics, XGBoost JSON export.
public enum TrainingModule {}
