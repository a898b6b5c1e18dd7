"""delitos-platform: Colombia's open cybercrime data (datos.gov.co ``4v6r-wu98``) as analytics-ready tables."""
