/* cloud.c - hosts and audiences of Microsoft's clouds (see cloud.h). */
#include "cloud.h"

#include <stdio.h>
#include <string.h>

static const struct cloud clouds[] = {
    {"global", "https://login.microsoftonline.com", "https://graph.microsoft.com",
     "https://api.partnercenter.microsoft.com", "https://graph.microsoft.com",
     "https://api.partnercenter.microsoft.com", "https://intune.microsoft.com"},
    {"usgov", "https://login.microsoftonline.us", "https://graph.microsoft.us",
     "https://api.partnercenter.microsoft.com", "https://graph.microsoft.us",
     "https://api.partnercenter.microsoft.com", "https://intune.microsoft.us"},
    {"usgovdod", "https://login.microsoftonline.us", "https://dod-graph.microsoft.us",
     "https://api.partnercenter.microsoft.com", "https://dod-graph.microsoft.us",
     "https://api.partnercenter.microsoft.com", "https://intune.microsoft.us"},
    {"china", "https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn",
     "https://partner.partnercenterapi.microsoftonline.cn",
     "https://microsoftgraph.chinacloudapi.cn",
     "https://partner.partnercenterapi.microsoftonline.cn", "https://intune.microsoftonline.cn"},
};

const struct cloud *
cloud_find(const char *name)
{
    if (name == NULL || name[0] == '\0')
        return &clouds[0];
    for (size_t i = 0; i < sizeof clouds / sizeof clouds[0]; i++)
        if (strcmp(clouds[i].name, name) == 0)
            return &clouds[i];
    return NULL;
}

static void
set_url(char *field, size_t size, const char *global, const char *want)
{
    if (strcmp(field, global) == 0)
        snprintf(field, size, "%s", want);
}

void
cloud_apply(const struct cloud *cl, struct config *cfg)
{
    const struct cloud *g = &clouds[0];

    if (cl == NULL || cl == g)
        return;
    set_url(cfg->login_url, sizeof cfg->login_url, g->login_url, cl->login_url);
    set_url(cfg->graph_url, sizeof cfg->graph_url, g->graph_url, cl->graph_url);
    set_url(cfg->partner_center_url, sizeof cfg->partner_center_url, g->pc_url, cl->pc_url);
}
