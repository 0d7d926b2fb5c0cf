# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""File trees copied between hosts with rsync over ssh (``file_sync``): the file list (filelist), rsync's
command, output and errors (rsync)."""
