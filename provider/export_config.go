package provider

import (
	"os"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
)

// exportSettings returns the export store's URL (export_url, or
// export_path, which names a file) and the psa-syncd token. A value in the
// configuration wins over the environment; export_path and export_url
// name the same thing, so giving both at one level is an error.
func exportSettings(config psaProviderModel, diags *diag.Diagnostics) (url, token string) {
	token = stringFromEnv(config.ExportToken, envExportToken)
	pathSet, urlSet := !config.ExportPath.IsNull(), !config.ExportURL.IsNull()
	switch {
	case pathSet && urlSet:
		diags.AddAttributeError(path.Root("export_url"), "Conflicting Mapping Export Settings",
			"export_path and export_url both name the mapping export store. Keep export_url only: a path is a valid export_url.")
		return "", ""
	case urlSet:
		return config.ExportURL.ValueString(), token
	case pathSet:
		return config.ExportPath.ValueString(), token
	}
	envPath, envURL := os.Getenv(envExportPath), os.Getenv(envExportURL)
	if envPath != "" && envURL != "" {
		diags.AddError("Conflicting Mapping Export Settings",
			"The "+envExportPath+" and "+envExportURL+" environment variables are both set and both name the mapping export store. "+
				"Unset "+envExportPath+": a path is a valid "+envExportURL+".")
		return "", ""
	}
	if envURL != "" {
		return envURL, token
	}
	return envPath, token
}
